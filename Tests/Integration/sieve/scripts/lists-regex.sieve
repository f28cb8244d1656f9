require ["fileinto", "regex", "variables"];
if header :regex "List-Id" "<([a-z0-9-]+)\\.([a-z.]+)>" {
    fileinto "lists/${2}/${1}";
} elsif header :regex "Subject" "^\\[([^]]+)\\]" {
    fileinto "tagged/${1}";
}
