-- Orders: one row per accepted order. The API validates first; the constraints are the
-- last line of defence.
CREATE TABLE orders (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol     TEXT             NOT NULL CHECK (symbol ~ '^[A-Za-z0-9._/-]{1,16}$'),
    side       TEXT             NOT NULL CHECK (side IN ('buy', 'sell')),
    qty        DOUBLE PRECISION NOT NULL CHECK (qty > 0 AND qty <= 1000000),
    created_at TIMESTAMPTZ      NOT NULL DEFAULT now()
);
