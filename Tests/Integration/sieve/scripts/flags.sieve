require ["fileinto", "imap4flags", "variables"];
setflag "\\Flagged";
addflag ["\\Answered work", "Later"];
removeflag "later";
if header :contains "Subject" "urgent" {
    addflag "\\Flagged urgent";
    fileinto :flags "\\Draft" "Drafts";
}
if hasflag :is "work" {
    keep;
}
setflag "mine" "$Forwarded";
addflag "mine" "\\Deleted";
if hasflag :contains "mine" "Deleted" {
    fileinto :flags "${mine}" "Trash";
}
removeflag "\\Flagged";
