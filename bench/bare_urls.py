"""The app's URLs plus one bare authenticated JSON view, for ``readers_load.py``.

The bare view does what every reader request does before its own work (the
middleware stack, the session and the signed-in user) and nothing after it:
its throughput beside the reader API's, served by the same processes from
the same database, is the share of the stack the reading itself costs.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from turingtest.urls import urlpatterns as app_urlpatterns


def bare(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"error": "sign in first"}, status=403)
    return JsonResponse({"user": request.user.pk})


urlpatterns = [path("bench/bare", bare), *app_urlpatterns]
