require ["fileinto"];
if exists ["List-Id", "List-Post"] { fileinto "both"; }
elsif exists "List-Id" { fileinto "id-only"; }
elsif not exists ["X-Spam-Flag"] { fileinto "clean"; }
