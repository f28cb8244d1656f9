require ["fileinto", "envelope"];
if envelope :domain :is "from" "lists.example.org" { fileinto "from-list-server"; }
if envelope :localpart :matches "from" "bounce-*" { fileinto "bounces"; }
if envelope :all :is "to" "me+shop@example.org" { fileinto "shop"; }
