# Corners: empty keys, escapes, quoted local parts, groups, captures of the first match.
require ["fileinto", "imap4flags", "variables", "regex", "relational", "comparator-i;ascii-numeric"];
if header :contains "Subject" "" { addflag "empty-key-contains"; }
if header :is "X-Empty" "" { addflag "empty-value"; }
if header :matches "Subject" "*\\**" { addflag "star-in-subject"; }
if header :matches "Subject" "??*" { addflag "two-or-more"; }
if address :localpart :is "From" "john doe" { addflag "quoted-localpart"; }
if address :count "eq" :comparator "i;ascii-numeric" "To" "0" { addflag "no-to-addresses"; }
if address :all :is "Reply-To" "list@example.org" { addflag "reply-to-comment"; }
if header :matches "Received" "from *" { set "hop" "${1}"; }
if header :regex "Subject" "([0-9]+)\\.([0-9]+)" { set "version" "${0}-${2}"; }
if string :count "eq" :comparator "i;ascii-numeric" ["${hop}", "", "x"] "2" { addflag "two-nonempty"; }
set "text" text:
line one
..dotted
.
;
if string :matches "${text}" "*dotted*" { addflag "multiline"; }
fileinto "hop-${hop}.v-${version}";
