# Encoded words in headers are decoded before they are compared.
require ["fileinto"];
if header :contains "Subject" "Grüße" { fileinto "greetings"; }
if address :all :is "From" "hans@example.de" { fileinto "hans"; }
