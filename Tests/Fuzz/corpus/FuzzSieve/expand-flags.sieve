require ["variables", "imap4flags", "fileinto"];
if envelope :matches "from" "*" { setflag "${1}"; }
if address :localpart :matches "to" "*" { fileinto :flags "${0}" "INBOX/${1}"; }
if header :regex "X-Flags" "(.*)" { addflag ["${1}", "$Junk"]; }
