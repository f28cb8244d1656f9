# user+detail@domain: the detail names the folder.
require ["fileinto", "envelope", "subaddress", "variables", "imap4flags"];
if envelope :detail :matches "to" "*" {
    if string :is "${1}" "" {
        fileinto "INBOX.empty-detail";
    } else {
        fileinto "INBOX.${1}";
    }
} elsif envelope :user "to" "postmaster" {
    fileinto "admin";
}
if address :detail "to" "lists" { addflag "sub-lists"; }
