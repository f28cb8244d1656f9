require ["fileinto", "imap4flags"];
if address :localpart :is "From" "alice" { addflag "from-alice"; }
if address :domain :is ["To", "Cc"] "example.org" { addflag "to-example-org"; }
if address :all :is "Cc" "jane@y.org" { fileinto "jane"; }
if address :all :contains "To" "Doe" { fileinto "display-name-is-not-the-address"; }
if address :domain :matches "From" "*.example.com" { fileinto "subdomain"; }
