"""The portal's pages (owned by the web portal work)."""

app_name = "portal"
urlpatterns = []
