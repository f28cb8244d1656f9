require ["fileinto"];
if header :contains "X-Virus" "infected" { discard; stop; }
if header :is "X-Spam-Flag" "YES" { discard; fileinto "Spam-anyway"; }
