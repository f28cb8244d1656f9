require ["variables", "vnd.notmuch", "imap4flags", "fileinto", "mailbox"];
if header :matches "List-Id" "*" { tag "+lists/${1}"; set "l" "${1}"; }
if header :matches "Subject" "* *" { tag "${1} +s/${2}"; addflag "${2}"; }
set :lower "x" "${l}";
tag "+x/${x} -${x}";
addflag "f" "${l}";
addflag "${f} \\Answered";
fileinto :create "lists/${l}";
