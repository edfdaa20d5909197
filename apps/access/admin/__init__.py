"""Admin for the access-control list: stations, token groups, driver tokens and grants.

Forms validate what an operator typed (token values, station ids in any accepted form); every write
goes through apps/access/services.py, like the API's. Tokens and grants are never deleted here:
tokens are blocked, grants revoked, so the history of who could charge where stays readable.

One module per model's admin (stations, groups, tokens, grants) and what they share (common);
importing them registers them.
"""

from django.contrib import admin

from apps.access.admin import grants, groups, stations, tokens

__all__ = ["grants", "groups", "stations", "tokens"]

admin.site.site_header = "Charge Service administration"
admin.site.site_title = "Charge Service admin"
admin.site.index_title = "Access control, decision log and API clients"
