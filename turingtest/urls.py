from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from turingtest.results import views as results_views
from turingtest.studies import api, views

api_patterns = api.url_patterns()

staff_patterns = [
    path("studies/<slug:slug>/", results_views.staff_study, name="staff-study"),
    path(
        "studies/<slug:slug>/status",
        results_views.staff_study_status,
        name="staff-study-status",
    ),
    path(
        "studies/<slug:slug>/invite",
        results_views.staff_study_invite,
        name="staff-study-invite",
    ),
    path(
        "studies/<slug:slug>/cases",
        results_views.staff_study_cases,
        name="staff-study-cases",
    ),
    path(
        "studies/<slug:slug>/results.zip",
        results_views.staff_study_export,
        name="staff-study-export",
    ),
    path(
        "studies/<slug:slug>/report/rebuild",
        results_views.staff_study_report_build,
        name="staff-study-report-build",
    ),
    path(
        "studies/<slug:slug>/heatmaps/<int:number>.png",
        results_views.staff_study_heatmap,
        name="staff-study-heatmap",
    ),
    path(
        "studies/<slug:slug>/report/<slug:plot>.png",
        results_views.staff_study_report_plot,
        name="staff-study-report-plot",
    ),
]

urlpatterns = [
    # First: the reader API's requests are nearly all of the traffic, and
    # Django tries the patterns in order.
    path("api/v1/", include(api_patterns)),
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Django's password reset: the same page whether or not the address has an
    # account; the mail goes through EMAIL_URL.
    path(
        "accounts/password-reset/",
        auth_views.PasswordResetView.as_view(),
        name="password_reset",
    ),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("invite/<str:token>/", views.invitation, name="invitation"),
    path("accounts/signup/sent/", views.signup_sent, name="signup-sent"),
    path(
        "accounts/signup/confirm/<str:signed>/",
        views.signup_confirm,
        name="signup-confirm",
    ),
    path("s/<slug:slug>/", views.study_home, name="study-home"),
    path("s/<slug:slug>/read/", views.study_read, name="study-read"),
    path("s/<slug:slug>/done/", views.study_done, name="study-done"),
    path("staff/", include(staff_patterns)),
    path("staff/images/", include("turingtest.imaging.urls")),
    path("admin/", admin.site.urls),
]
