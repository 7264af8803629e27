"""Dropping cached copies of rows when the rows change.

The reader's requests read the signed-in user and the tokens of the images
they may see from the cache (see turingtest.middleware and
:func:`turingtest.studies.selectors.image_file_for_user`). A change that
could take something away is applied to the cache once it is committed.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete

from turingtest.middleware import USER_CACHE_SECONDS
from turingtest.sessions import user_cache_key
from turingtest.studies import signed_images
from turingtest.studies.models import Case, Enrollment, Study
from turingtest.studies.selectors import image_access_revoke


def _user_changed(sender, instance, **kwargs) -> None:
    key = user_cache_key(instance.pk)
    cache.delete(key)
    # Again after commit: a request between the save and the commit may have
    # cached the row as it was.
    transaction.on_commit(lambda: cache.delete(key))


def _user_signed_in(sender, request, user, **kwargs) -> None:
    # After Django's own receiver has saved the sign-in time: the next
    # request finds the user row cached.
    transaction.on_commit(
        lambda: cache.set(user_cache_key(user.pk), user, timeout=USER_CACHE_SECONDS)
    )


def _access_may_shrink(sender, instance, **kwargs) -> None:
    image_access_revoke()
    # Again after commit, as for the user above.
    transaction.on_commit(image_access_revoke)


def _study_links(sender, instance, **kwargs) -> None:
    # Signed image URLs work through a link per case while the study is open.
    if signed_images.signing_enabled():
        transaction.on_commit(lambda: signed_images.case_links_sync(instance))


def _study_deleting(sender, instance, **kwargs) -> None:
    if signed_images.signing_enabled():
        tokens = list(instance.cases.values_list("token", flat=True))
        transaction.on_commit(lambda: signed_images.case_links_remove(tokens))


def connect() -> None:
    user = get_user_model()
    post_save.connect(_user_changed, sender=user, dispatch_uid="tt-user-saved")
    post_delete.connect(_user_changed, sender=user, dispatch_uid="tt-user-deleted")
    user_logged_in.connect(_user_signed_in, dispatch_uid="tt-user-signed-in")
    # A study closed (any save of a study), or a study, enrollment or case gone.
    post_save.connect(_access_may_shrink, sender=Study, dispatch_uid="tt-study-saved")
    post_save.connect(_study_links, sender=Study, dispatch_uid="tt-study-links")
    pre_delete.connect(_study_deleting, sender=Study, dispatch_uid="tt-study-unlinks")
    for model in (Study, Enrollment, Case):
        post_delete.connect(
            _access_may_shrink, sender=model, dispatch_uid=f"tt-{model.__name__}-gone"
        )
