# Spam to Junk, read, flagged $Junk; nothing else runs for it.
require ["fileinto", "imap4flags", "relational", "comparator-i;ascii-numeric"];
if anyof (header :is "X-Spam-Flag" "YES",
          header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "5") {
    addflag ["\\Seen", "$Junk"];
    fileinto "Junk";
    stop;
}
fileinto "Ham";
