"""The webhook's routes, in powertools Routers that functions/handlers/webhook.py includes.

Every route of a router is behind the webhook's gate (body size, then the HMAC signature) unless webhook.py lists
it as public; errors are application/problem+json (routes._common).
"""
