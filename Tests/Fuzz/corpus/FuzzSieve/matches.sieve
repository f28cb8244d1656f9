require ["fileinto", "variables"];
if header :matches "Subject" "[*] *" {
    fileinto "bracket.${1}";
}
if header :matches "From" "*<?*@*>" {
    fileinto "from.${2}${3}.${4}";
}
if header :matches "Subject" "*??.*" {
    fileinto "version.${2}${3}";
}
if header :matches "Subject" "\\[*" { fileinto "literal-bracket"; }
