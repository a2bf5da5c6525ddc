"""Protocol adapters: how subscriptions become wire messages, and back."""
