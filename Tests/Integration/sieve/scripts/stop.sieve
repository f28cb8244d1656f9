require ["fileinto", "imap4flags"];
addflag "first";
if header :contains "From" "boss" { fileinto "Boss"; stop; }
addflag "second";
if size :over 1 { fileinto "Everything"; }
stop;
discard;
