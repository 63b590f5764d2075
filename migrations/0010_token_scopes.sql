-- What an API token may do: read (GET), write (change issues, incidents, rules), admin
-- (projects, keys). Tokens made before scopes existed keep full access.
ALTER TABLE api_tokens
    ADD COLUMN scope text NOT NULL DEFAULT 'admin' CHECK (scope IN ('read', 'write', 'admin'));
