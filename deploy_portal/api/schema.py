"""The OpenAPI schema documents the error answers ``deploy_portal.api.exceptions`` gives, on every operation that can give them."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})
FIELD_ERRORS = OpenApiResponse(
    response={
        "type": "object",
        "description": "Field name (or non_field_errors) to its messages; nested fields nest.",
        "additionalProperties": {},
    },
    description=_("Bad input: the messages for each field."),
)

ERROR_ANSWERS = {
    "400": FIELD_ERRORS,
    "401": OpenApiResponse(DETAIL, description=_("Not authenticated.")),
    "403": OpenApiResponse(DETAIL, description=_("Not allowed (manager operation, or a missing CSRF token).")),
    "404": OpenApiResponse(DETAIL, description=_("No such object, or one the user may not see.")),
}


class ApiAutoSchema(AutoSchema):
    def _error_codes(self):
        codes = set()
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes.add("401")
            if self.method in UNSAFE:
                codes.add("403")
        # A path parameter, a page past the end and an unknown ?format= all answer 404.
        if "{" in self.path or self._get_pagination_parameters() or self._get_format_parameters():
            codes.add("404")
        if self.method in ("POST", "PUT", "PATCH") or self._get_filter_parameters():
            codes.add("400")
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in sorted(self._error_codes() - set(responses)):
            responses[code] = self._get_response_for_code(ERROR_ANSWERS[code], code, direction=direction)
        return responses
