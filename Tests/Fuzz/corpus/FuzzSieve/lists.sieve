# Mailing lists by List-Id, the folder named from the id.
require ["fileinto", "mailbox", "variables"];
if header :matches "List-Id" "*<*.*>" {
    set :lower "list" "${2}";
    fileinto :create "lists.${list}";
    stop;
}
if exists "List-Post" {
    fileinto "lists.unknown";
}
