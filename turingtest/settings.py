"""Settings, read from the environment (cookiecutter-django style).

With no environment set, the app runs on its embedded defaults: SQLite and
files under ``var/``, Celery on a filesystem broker served by a local worker.
Production values come only from environment variables; see README.md.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from turingtest.media_storage import is_local, storage_from_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env(
    "SECRET_KEY",
    default="embedded-default-insecure-key-set-SECRET_KEY-in-production"
    if DEBUG
    else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Where readers reach the site: the links in invitations made on the command line.
BASE_URL = env.str("BASE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "turingtest.imaging",
    "turingtest.generation",
    "turingtest.studies",
    "turingtest.results",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's AuthenticationMiddleware, with the user row from the cache.
    "turingtest.middleware.CachedUserAuthenticationMiddleware",
    # Django's MessageMiddleware, its storage made only where a message is.
    "turingtest.middleware.LazyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "turingtest.middleware.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "turingtest.urls"
WSGI_APPLICATION = "turingtest.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "turingtest.studies.context_processors.scales",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process and the local worker write without locking
    # each other out for long.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # Django's default: no "SELECT 1" before each request's first query. A
    # connection the server dropped fails that request (the reader API
    # answers 503 "try again") and is closed after it. The check cost about
    # 1 ms of CPU per reader request (bench/readers_load.py).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool(
        "CONN_HEALTH_CHECKS", default=False
    )
    # Parameters sent apart from the SQL, and a statement that runs five
    # times on a connection prepared by the server: PostgreSQL parses and
    # plans each reader query once per connection, and psycopg no longer
    # quotes values into the SQL. Half of PostgreSQL's CPU per reader request.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 5}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Argon2 at Django's strength (memory-hard, and about a sixth less CPU per
# sign-in than Django's PBKDF2 here: bench/readers_load.py). The others still check
# passwords stored before, and Django re-hashes them with Argon2 at sign-in.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sessions are read from the cache (Redis, or the file cache by default) and
# written through to the database, so a request reads no session row: Django's
# cached_db, read with the signed-in user's cached row (turingtest/sessions.py).
SESSION_ENGINE = "turingtest.sessions"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# No route serves MEDIA_URL, and the web server must not either: reader
# images go through an access-checked view with identical headers for all.
MEDIA_URL = "/media/"
# Pool images: under MEDIA_ROOT by default; MEDIA_STORAGE=s3://bucket/prefix?...
# puts them in an S3-compatible bucket that web servers and GPU workers on other
# machines share (turingtest/media_storage.py, docs/deploy.md).
MEDIA_STORAGE = env.str("MEDIA_STORAGE", default="")
STORAGES = {
    "default": storage_from_url(MEDIA_STORAGE),
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Celery: Redis when REDIS_URL is set, else an embedded filesystem broker.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CACHES = {
        "default": {
            "BACKEND": "turingtest.cache.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    BROKER_DIR = Path(env("BROKER_DIR", default=str(VAR_DIR / "broker")))
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = None
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "turingtest.studies.tasks.generation_job_run": {"queue": "gpu"},
    "turingtest.studies.tasks.machine_reader_run": {"queue": "gpu"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# The project's own settings. Each is read from TURINGTEST_<NAME>, with the
# default here; docs/deploy.md lists them, turingtest/conf.py types and checks
# them (the app does not start with a bad one), and code reads them only
# through turingtest.conf.project_settings().
TURINGTEST = {
    name: env.str(f"TURINGTEST_{name}", default=default)
    for name, default in {
        # Pool images: one canonical form for real and synthetic alike.
        "IMAGE_SIZE": 224,
        "IMAGE_FIT": "crop",  # or "pad"
        "IMAGE_NORMALISE": "none",  # or "percentile"
        "IMAGE_NORMALISE_LOW": 1.0,
        "IMAGE_NORMALISE_HIGH": 99.0,
        "PNG_COMPRESS_LEVEL": 0,
        "CANONICALISE": True,
        "KEEP_ORIGINALS": True,
        # A DICOM file carries its patient's data in the header.
        "KEEP_DICOM_ORIGINALS": False,
        # Uploads and imports.
        "MAX_UPLOAD_BYTES": 512 * 1024 * 1024,
        "MAX_IMAGE_BYTES": None,  # MAX_UPLOAD_BYTES
        "MAX_ARCHIVE_BYTES": None,  # 4 x MAX_UPLOAD_BYTES
        "MAX_ARCHIVE_RATIO": 200.0,
        "MAX_ARCHIVE_ENTRIES": 200_000,
        # Larger images are refused from their header. Decoding one costs
        # about 13 bytes a pixel at its peak: some 520 MB of a worker here.
        "MAX_IMAGE_PIXELS": 40_000_000,
        "MIN_IMAGE_SIDE": 32,
        "MAX_ASPECT_RATIO": 4.0,
        # Who sends an image once the view has checked access: "django" (the
        # view streams the file), "nginx" (X-Accel-Redirect to the internal
        # location IMAGE_INTERNAL_PREFIX, mapped to MEDIA_ROOT) or "apache"
        # (X-Sendfile, mod_xsendfile); see docs/deploy.md.
        "IMAGE_SERVING": "django",
        "IMAGE_INTERNAL_PREFIX": "/protected-media/",
        # "nginx-signed": readers get image URLs under IMAGE_SIGNED_PREFIX,
        # signed with IMAGE_SIGNING_KEY and good for IMAGE_URL_SECONDS, which
        # nginx checks and serves without asking the app (docs/deploy.md).
        "IMAGE_SIGNED_PREFIX": "/signed-images/",
        "IMAGE_SIGNING_KEY": "",
        "IMAGE_URL_SECONDS": 900,
        "INVITATION_DAYS": 30,
        # Guessing invitation links: free tries per client address, then a
        # wait that doubles with each wrong link (turingtest/studies/throttle.py).
        "INVITATION_GUESSES_FREE": 10,
        "INVITATION_GUESS_BACKOFF_SECONDS": 1.0,
        "INVITATION_GUESS_BACKOFF_MAX_SECONDS": 900.0,
        # Generation workers: a job's lease (a worker that stops renewing it
        # is presumed dead) and images per forward pass.
        "GENERATION_LEASE_SECONDS": 120.0,
        "GENERATION_BATCH_SIZE": 64,
        "DELETED_DIR": str(VAR_DIR / "deleted"),  # backups of deleted studies
    }.items()
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Reverse proxies whose X-Forwarded-For is believed (addresses or networks).
# nginx on the same host, as docs/deploy.md sets it up, is 127.0.0.1 / ::1.
# Everyone else's header is ignored; see turingtest/client_address.py.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=["127.0.0.1", "::1"])

# Guessing passwords: after repeated failures, lock that account out from
# that client address only (so a guesser elsewhere cannot lock its owner out).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = 1  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_CLIENT_IP_CALLABLE = "turingtest.client_address.client_address"

# Mail (invitations, password resets): EMAIL_URL such as
# smtp+tls://user:password@smtp.example.org:587; the console by default.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env(
    "DEFAULT_FROM_EMAIL", default="Reader studies <noreply@localhost>"
)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the reader viewer reads it to send X-CSRFToken
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
}

# Checked here so that a bad value stops the app at start, naming the variable.
from turingtest.conf import ProjectSettings  # noqa: E402

_project = ProjectSettings.from_mapping(TURINGTEST)
if _project.image_serving != "django" and not is_local(STORAGES["default"]):
    # The front server sends a file from its own disk; a bucket is not one.
    raise ImproperlyConfigured(
        f"TURINGTEST_IMAGE_SERVING={_project.image_serving} needs the images on a "
        "local disk (MEDIA_ROOT), but MEDIA_STORAGE puts them in object storage. "
        "Unset TURINGTEST_IMAGE_SERVING (images are then streamed from the bucket "
        "by the access-checked view) or unset MEDIA_STORAGE."
    )
del _project
