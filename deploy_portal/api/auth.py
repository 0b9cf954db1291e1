"""``POST /api/v1/auth/token/``: a username and password in, the user's API token out."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken

from .parsers import PARSERS


class ObtainTokenView(ObtainAuthToken):
    parser_classes = PARSERS  # ObtainAuthToken names DRF's own, which a deeply nested body crashes
    @extend_schema(
        summary=_("Get the API token of a user"),
        description=_("Send it as `Authorization: Token <key>`."),
        request=AuthTokenSerializer,
        responses={200: inline_serializer("Token", {"token": serializers.CharField()})},
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
