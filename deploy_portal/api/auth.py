"""``POST /api/v1/auth/token/``: a username and password in, the user's API token out."""

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from .parsers import PARSERS
from .schema import DETAIL


class ObtainTokenView(ObtainAuthToken):
    parser_classes = PARSERS  # ObtainAuthToken names DRF's own, which a deeply nested body crashes

    @extend_schema(
        summary=_("Get the API token of a user"),
        description=_("Send it as `Authorization: Token <key>`."),
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            429: OpenApiResponse(DETAIL, description=_("Too many failed log-ins for this username from this address.")),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except exceptions.ValidationError:
            # django-axes refused the pair (username, address) before the password was even checked.
            if getattr(request, "axes_locked_out", False):
                raise exceptions.Throttled(
                    wait=settings.AXES_COOLOFF_TIME.total_seconds(), detail=str(settings.AXES_COOLOFF_MESSAGE)
                ) from None
            raise
        user = serializer.validated_data["user"]
        # A log-in, as the portal's: django-axes resets the failure count, last_login is kept.
        user_logged_in.send(sender=type(user), request=request, user=user)
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
