"""Admin of results: deleting a study only once its answers are saved.

A study with answers is deleted one at a time, after its slug is typed, and
only once its results and a restorable backup are written (see
:mod:`turingtest.results.backup`). That step needs the exports, which this
app owns, so it extends the studies app's ``StudyAdmin`` here.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import NestedObjects, unquote
from django.core.exceptions import ValidationError
from django.db import router
from django.http import HttpResponseRedirect

from turingtest.results import backup
from turingtest.studies.admin import StudyAdmin as StudySetUpAdmin
from turingtest.studies.models import Case, Judgment, JudgmentRevision, Study

admin.site.unregister(Study)


@admin.register(Study)
class StudyAdmin(StudySetUpAdmin):
    # Deleting a study with answers: one at a time, typed confirmation, results first.
    delete_confirmation_template = "admin/studies/study/delete_confirmation.html"

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(
            objs, request
        )
        # Answers and an open study's cases are never deleted one by one; with
        # their study they go, once delete_model has exported them.
        perms_needed -= {
            m._meta.verbose_name for m in (Case, Judgment, JudgmentRevision)
        }
        if protected:
            collector = NestedObjects(using=router.db_for_write(Study))
            collector.collect(objs)
            # Judgments protect their cases; study_delete removes them first.
            if all(isinstance(obj, Judgment) for obj in collector.protected):
                protected = []
        return deleted, counts, perms_needed, protected

    def delete_view(self, request, object_id, extra_context=None):
        study = self.get_object(request, unquote(object_id))
        answers = backup.study_answer_count(study=study) if study is not None else 0
        if (
            answers
            and request.method == "POST"
            and request.POST.get("confirm", "").strip() != study.slug
        ):
            messages.error(
                request,
                f"Type the study's slug ({study.slug}) to confirm its deletion.",
            )
            return HttpResponseRedirect(request.path)
        extra_context = (extra_context or {}) | {
            "answers": answers,
            "deleted_dir": backup.deleted_dir(),
        }
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as exc:  # answers arrived after the page was shown
            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(request.path)

    def delete_model(self, request, obj):
        deleted = backup.study_delete(
            study=obj, confirmation=request.POST.get("confirm", "")
        )
        if deleted.archive is not None:
            messages.info(
                request,
                f"Its answers and a restorable backup were written to {deleted.archive}.",
            )
