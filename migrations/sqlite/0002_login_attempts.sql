-- Sign-in attempts, for rate limiting across every app instance.
CREATE TABLE login_attempts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT   NOT NULL,
    ip         TEXT   NOT NULL,
    success    BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX login_attempts_email ON login_attempts (email, created_at);
CREATE INDEX login_attempts_ip ON login_attempts (ip, created_at);
