require ["fileinto", "copy", "mailbox"];
if header :contains "Subject" "" { fileinto :copy :create "Archive"; }
if header :contains "From" "boss" { fileinto :copy "Boss"; fileinto "Boss"; }
