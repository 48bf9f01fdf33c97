"""Who may call: client IP, ACLs, APP signature / AppCode authentication, app checks, IAM (docs/auth.md)."""
