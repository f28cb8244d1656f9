require ["fileinto", "imap4flags"];
if header :comparator "i;octet" :contains "Subject" "Release" { addflag "octet-release"; }
if header :comparator "i;octet" :contains "Subject" "release" { addflag "octet-lower"; }
if header :comparator "i;ascii-casemap" :is "Subject" "[DEV] RELEASE 2.0 IS OUT" { addflag "casemap-is"; }
if header :comparator "i;octet" :matches "Subject" "*Re*" { addflag "octet-matches"; }
