# The same mailbox twice is one store; a duplicate does not cancel the implicit keep.
require ["fileinto", "copy", "imap4flags"];
if header :contains "Subject" "e" {
    fileinto :flags "a" "X";
    fileinto :flags "b" "X";
}
if size :over 1K { fileinto :copy "Y"; fileinto "Y"; }
if address :domain "From" "example.com" { keep :flags "k"; fileinto "INBOX"; }
