"""The API's endpoints, one router per resource; each `router(settings)` builds its own.

The routers are built from the settings because list limits (`max_page_size`,
`default_page_size`) are part of the OpenAPI document and of request validation.
"""
