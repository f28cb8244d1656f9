require ["fileinto", "variables", "encoded-character"];
if header :matches "Subject" "*" { set "subject" "${1}"; }
set :upper "a" "${subject}";
set :lowerfirst "b" "ABC";
set :length "n" "${subject}";
set :quotewildcard "q" "a*b?";
set :upperfirst :lower "c" "hELLO";
set "x" "${unknown}-${hex:41 42}";
if string :is "${n}" "0" { fileinto "no-subject"; } else { fileinto "len-${n}.${b}.${c}.${x}.${q}"; }
if string :matches "${a}" "*RELEASE*" { fileinto "shouted-${2}"; }
