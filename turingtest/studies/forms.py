from collections.abc import Mapping

from django import forms
from django.contrib.auth.password_validation import password_validators_help_text_html

from turingtest.domain.scales import KL, Scale, ScaleError
from turingtest.imaging.selectors import pool_choices
from turingtest.studies.models import Reader


class SignupForm(forms.Form):
    name = forms.CharField(max_length=200, label="Full name")
    email = forms.EmailField()
    password = forms.CharField(
        widget=forms.PasswordInput, help_text=password_validators_help_text_html()
    )
    password_again = forms.CharField(
        widget=forms.PasswordInput, label="Password (again)"
    )
    profession = forms.ChoiceField(choices=Reader.Profession.choices)
    experience_years = forms.IntegerField(
        min_value=0, max_value=70, label="Years of experience"
    )
    subspecialty = forms.CharField(max_length=200, required=False)

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class ConsentForm(forms.Form):
    consent = forms.BooleanField(
        required=True, label="I have read the instructions and agree to take part."
    )


class InviteForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=500, required=False, initial=1)
    emails = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One email per line: each address is sent its personal invitation, "
        "which only that address can use. Leave empty for anonymous links.",
    )
    days = forms.IntegerField(
        min_value=1, max_value=365, initial=30, label="Valid for (days)"
    )

    def clean_emails(self):
        emails = [
            e.strip() for e in self.cleaned_data["emails"].splitlines() if e.strip()
        ]
        if len(emails) > 200:
            # Mails go out while the page waits: keep that to seconds.
            raise forms.ValidationError("At most 200 emails at a time.")
        field = forms.EmailField()
        return [field.clean(e) for e in emails]

    def clean(self):
        data = super().clean()
        if not data.get("emails") and not data.get("count"):
            raise forms.ValidationError("Give a number of links or a list of emails.")
        return data


class CasesForm(forms.Form):
    """The study page's case draw: what ``build_cases`` takes, with the same choice."""

    scale = forms.ChoiceField(
        required=False,
        label="Balanced on",
        help_text="The scale of the pool's reference values that the cases are "
        f"balanced on: the {KL.short_label} for the reference study, BI-RADS for "
        "a mammography pool.",
    )
    grades = forms.CharField(
        required=False,
        max_length=200,
        label="Grades",
        help_text="Values of that scale, comma-separated (empty: all of them).",
    )
    per_grade = forms.IntegerField(
        min_value=1,
        max_value=1000,
        label="Images per grade and source",
        help_text="N real and N synthetic images per value of that scale.",
    )
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1)
    practice = forms.IntegerField(min_value=0, max_value=100, label="Practice cases")
    attention = forms.IntegerField(
        min_value=0, max_value=100, initial=0, label="Attention checks"
    )
    real_from = forms.MultipleChoiceField(
        required=False,
        label="Real images from",
        help_text="Import batches or tags (none chosen: every real image).",
    )
    generator = forms.MultipleChoiceField(
        required=False,
        label="Synthetic images from",
        help_text="Generators (none chosen: every synthetic image).",
    )
    exclude_used = forms.BooleanField(
        required=False, label="Leave out images that other studies use"
    )
    fill_from_pool = forms.BooleanField(
        required=False,
        label="Fill short cells from the rest of the pool (and say so)",
    )

    def __init__(
        self, *args, scales: Mapping[str, Scale], default_scale: str, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.scales = scales
        self.default_scale = default_scale
        self.fields["scale"].choices = [
            (name, f"{scale.short_label} ({name})") for name, scale in scales.items()
        ]
        choices = pool_choices()
        origins = dict.fromkeys(choices["batches"] + choices["tags"])
        self.fields["real_from"].choices = [(n, n) for n in origins]
        self.fields["generator"].choices = [(n, n) for n in choices["generators"]]

    def clean(self):
        data = super().clean()
        scale = self.scales[data.get("scale") or self.default_scale]
        data["scale"] = scale
        if data.get("grades"):
            try:
                data["grades"] = scale.codes_from_text(data["grades"])
            except ScaleError as exc:
                self.add_error("grades", str(exc))
        else:
            data["grades"] = None
        return data
