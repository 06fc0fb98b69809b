"""The API's routers, one module per area; smartsla.api.app includes them."""
