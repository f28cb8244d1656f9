require ["fileinto"];
if address :domain "From" "example.com" {
    if anyof (header :contains "Subject" "invoice", header :contains "Subject" "receipt") {
        fileinto "Finance";
    } elsif not exists "List-Id" {
        if allof (size :under 10K, not header :is "To" "") {
            fileinto "Colleagues";
        } else {
            fileinto "Colleagues.big";
        }
    } else {
        fileinto "Work-lists";
    }
} elsif header :contains ["Subject", "Comments"] "urgent" {
    keep;
    fileinto "Urgent";
} else {
    if true { if false { discard; } else { fileinto "Other"; } }
}
