"""apig-gateway: an asyncio API-gateway data plane serving APIG v2-shaped published API definitions."""
