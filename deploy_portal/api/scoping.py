"""The one place the API restricts what it reads to the requesting user (NetBox's ``BaseViewSet.initial``).

A view names its ``queryset`` and the ``scope``: the queryset method that takes the user
(``visible_to``, ``usable_by``, ``of_member``, ``mountable_by``). ``initial`` applies it after
authentication and before anything reads a row, so a new view cannot forget it; an object the user
may not see answers 404.
"""


class ScopedViewMixin:
    queryset = None
    scope = "visible_to"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.queryset = getattr(type(self).queryset.all(), self.scope)(request.user)
