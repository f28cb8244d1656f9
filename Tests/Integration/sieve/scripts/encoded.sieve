# Encoded words in headers are decoded before they are compared.
require ["fileinto", "imap4flags", "relational", "comparator-i;ascii-numeric"];
if header :contains "Subject" "Grüße" { fileinto "greetings"; }
if address :all :is "From" "hans@example.de" { fileinto "hans"; }
# A display name with an encoded comma is still one mailbox.
if address :count "eq" :comparator "i;ascii-numeric" "Cc" "2" { addflag "two-cc"; }
