require ["fileinto"];
if size :over 8K { fileinto "big"; } elsif size :under 400 { fileinto "tiny"; } else { keep; }
