require ["fileinto", "relational", "comparator-i;ascii-numeric", "imap4flags"];
if header :count "ge" :comparator "i;ascii-numeric" "Received" "3" { addflag "many-hops"; }
if address :count "gt" :comparator "i;ascii-numeric" ["To", "Cc"] "2" { fileinto "crowd"; }
if header :value "lt" :comparator "i;ascii-numeric" "X-Priority" "3" { fileinto "important"; }
if header :value "gt" "Subject" "m" { addflag "late-alphabet"; }
if header :count "eq" :comparator "i;ascii-numeric" "X-None" "0" { addflag "no-x-none"; }
# i;ascii-casemap: Pigeonhole folds to lower case, so "_" (0x5F) sorts before "a" (0x61)
# (RFC 4790's upper case would put it after "A").
if header :value "gt" "X-Order" "a" { addflag "underscore-after-letters"; }
