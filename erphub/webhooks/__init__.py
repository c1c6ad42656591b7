"""Real-time input: signed push events (Jiandaoyun and generic HMAC sources), the inbox, its worker."""
