import json

import pytest
from django.urls import reverse, set_script_prefix

from turingtest.studies import api
from turingtest.studies.models import Judgment


def test_reader_walks_practice_then_phases(reader_api, study):
    steps = reader_api.answer_all()
    stages = [s["stage"] for s in steps]
    assert stages == ["practice"] * 2 + [1] * 10 + [2] * 10
    assert [s["position"] for s in steps if s["stage"] == 1] == list(range(10))
    assert all(s["total"] == 10 for s in steps if s["stage"] != "practice")
    assert Judgment.objects.filter(session__phase__isnull=False).count() == 20
    assert reader_api.next().json() == {
        "stage": "done",
        "redirect": f"/s/{study.slug}/done/",
    }


def test_next_preloads_the_following_image(reader_api):
    step = reader_api.next().json()
    following = reader_api.answer(step).json()["next"]
    assert step["preload"] == following["image"]


def test_image_urls_follow_the_mount_point_and_open(reader_api):
    """Behind a proxy that mounts the app under a prefix (SCRIPT_NAME, which
    Django's WSGI handler makes the script prefix), the steps name images
    under that prefix; at the root, as Django reverses them."""
    client = reader_api.client
    set_script_prefix("/reading/")
    try:
        mounted = client.get(f"{reader_api.base}/next").json()
    finally:
        set_script_prefix("/")
    at_root = reader_api.next().json()
    token = at_root["image"].rsplit("/", 1)[1]
    assert at_root["image"] == reverse("api-image", args=[token])
    assert mounted["image"] == "/reading" + at_root["image"]
    assert mounted["preload"] == "/reading" + at_root["preload"]
    image = client.get(at_root["image"])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"


def test_practice_gives_feedback_and_phases_do_not(reader_api):
    step = reader_api.next().json()
    practice = reader_api.answer(step, kl_grade=0).json()
    assert set(practice["feedback"]) == {
        "reference_kl",
        "reference_label",
        "correct",
    }  # grading first: no word of sources
    step = practice["next"]
    step = reader_api.answer(step).json()["next"]
    assert step["stage"] == 1
    assert "feedback" not in reader_api.answer(step).json()


def test_double_submit_stores_one_judgment(reader_api):
    step = reader_api.next().json()
    first = reader_api.answer(step, kl_grade=3)
    second = reader_api.answer(step, kl_grade=1)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["duplicate"] is True
    assert Judgment.objects.count() == 1
    assert Judgment.objects.get().kl_grade == 3


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        {"stage": "practice"},
        {"stage": "practice", "position": "0", "kl_grade": 1},
        {"stage": "practice", "position": 0, "kl_grade": 9},
        {"stage": "practice", "position": 0, "kl_grade": "2"},
        {"stage": "practice", "position": 0, "confidence": 3},
        {"stage": 7, "position": 0, "kl_grade": 1},
        {"stage": None, "position": 0, "kl_grade": 1},
        {"stage": "practice", "position": 4, "kl_grade": 1},
    ],
)
def test_malformed_answer_gets_400_and_stores_nothing(reader_api, body):
    reader_api.next()
    response = reader_api.post("answers", body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert not Judgment.objects.exists()


def test_wrong_method_is_refused(reader_api):
    assert reader_api.client.get(f"{reader_api.base}/answers").status_code == 405
    assert reader_api.post("next", {}).status_code == 405


def test_api_requires_sign_in(client, study):
    response = client.get(f"/api/v1/studies/{study.slug}/next")
    assert response.status_code == 401
    assert "Sign in" in response.json()["error"]


def test_reader_not_enrolled_is_refused(client, make_study, make_reader, enrollment):
    other = make_study(slug="other")
    client.force_login(enrollment.reader.user)
    # The same 404 as a study that does not exist: slugs cannot be probed.
    refused = client.get(f"/api/v1/studies/{other.slug}/next")
    missing = client.get("/api/v1/studies/nope/next")
    assert refused.status_code == missing.status_code == 404
    assert refused.content == missing.content


def test_resume_after_reload_continues_in_same_order(reader_api):
    seen = []
    step = reader_api.next().json()
    for _ in range(5):
        seen.append(step["image"])
        step = reader_api.answer(step).json()["next"]
    again = reader_api.next().json()
    assert again == reader_api.next().json()
    assert again["position"] == step["position"] and again["image"] == step["image"]


def test_schema_describes_the_api_to_staff(staff_client):
    schema = staff_client.get("/api/v1/schema").json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/studies/{slug}/answers" in schema["paths"]


def _body_schema(schema: dict, path: str) -> str:
    operation = schema["paths"][f"/api/v1/studies/{{slug}}/{path}"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def test_the_served_schema_is_derived_from_the_declared_bodies(staff_client):
    schema = staff_client.get("/api/v1/schema").json()
    components = schema["components"]["schemas"]
    for path, model in (
        ("answers", api.Answer),
        ("revisions", api.Revision),
        ("finish", api.Finish),
    ):
        name = _body_schema(schema, path)
        assert name == model.__name__
        served = components[name]
        assert list(served["properties"]) == list(model.model_fields)
        assert served["required"] == [
            f for f, info in model.model_fields.items() if info.is_required()
        ]
        # pydantic's own JSON schema of the model, as ninja serves it (ninja
        # leaves out defaults that are None).
        declared = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for prop in declared["properties"].values():
            if prop.get("default", ...) is None:
                del prop["default"]
        assert served == declared
    assert components["Answer"]["properties"]["kl_grade"]["maximum"] == 4
    assert set(components["Answer"]["properties"]) == {
        "stage",
        "position",
        "confidence",
        "kl_grade",
        "answers",
        "interaction",
    }
    assert schema["components"]["securitySchemes"]["SessionAuth"]["in"] == "cookie"


def test_a_field_added_to_a_body_appears_in_its_schema():
    from ninja import NinjaAPI

    class Longer(api.Answer):
        seconds_on_image: int | None = None

    probe = NinjaAPI(urls_namespace="probe")

    @probe.post("/answers")
    def answers(request, body: Longer) -> None: ...

    served = probe.get_openapi_schema(path_prefix="/")["components"]["schemas"]
    assert list(served["Longer"]["properties"]) == [
        *api.Answer.model_fields,
        "seconds_on_image",
    ]


def test_the_replies_have_the_declared_shape(reader_api):
    """What the views send is what the schema declares (nothing undeclared)."""

    def check(model, data: dict) -> None:
        model.model_validate(data)
        assert set(data) <= set(model.model_fields), (model, data)

    step = reader_api.next().json()
    while "redirect" not in step:
        check(api.Step, step)
        check(api.PhaseView, step["phase"])
        for question in step["phase"]["questions"]:
            check(api.Question, question)
        stored = reader_api.answer(step).json()
        check(api.Stored, stored)
        if "feedback" in stored:
            check(api.Feedback, stored["feedback"])
        step = stored["next"]
    check(api.Step, step)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json", {"error": "The request body must be a JSON object."}),
        ("[1, 2]", {"error": "The request body must be a JSON object."}),
        ("", {"error": "The request body must be a JSON object."}),
        (
            {"stage": "practice"},
            {
                "error": "'position' is required.",
                "fields": {"position": "'position' is required."},
            },
        ),
        (
            {"stage": True, "position": 0, "kl_grade": 1.5},
            {
                "error": "'stage' must be \"practice\" or a phase number. "
                "'kl_grade' must be a whole number.",
                "fields": {
                    "stage": "'stage' must be \"practice\" or a phase number.",
                    "kl_grade": "'kl_grade' must be a whole number.",
                },
            },
        ),
        (
            {"stage": "practice", "position": False, "answers": [1]},
            {
                "error": "'position' must be a whole number. "
                "'answers' must be an object.",
                "fields": {
                    "position": "'position' must be a whole number.",
                    "answers": "'answers' must be an object.",
                },
            },
        ),
        (
            {"stage": "practice", "position": 0, "kl_grade": 9},
            {
                "error": "The KL grade must be a whole number from 0 to 4.",
                "fields": {
                    "kl_grade": "The KL grade must be a whole number from 0 to 4."
                },
            },
        ),
    ],
)
def test_refusals_keep_the_error_shape(reader_api, body, expected):
    reader_api.next()
    response = reader_api.post("answers", body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == expected
    assert not Judgment.objects.exists()


def test_a_body_refused_for_a_study_one_does_not_read_is_a_404(reader_api):
    response = reader_api.client.post(
        "/api/v1/studies/elsewhere/revisions", "[", content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json() == {"error": "No such study."}


@pytest.mark.parametrize("who", ["anonymous", "reader"])
def test_schema_is_not_served_to_readers(client, reader_client, who):
    # It names the real/synthetic question, which a grading phase never mentions.
    visitor = reader_client if who == "reader" else client
    response = visitor.get("/api/v1/schema")
    assert response.status_code == 404
    assert b"synthetic" not in response.content


def test_grading_steps_name_only_the_grade(reader_api):
    step = reader_api.next().json()
    texts = []
    while step.get("stage") in ("practice", 1):
        assert [q["field"] for q in step["phase"]["questions"]] == ["kl_grade"]
        texts.append(json.dumps(step))
        response = reader_api.answer(step)
        texts.append(response.content.decode())
        step = response.json()["next"]
    for text in texts[:-1]:  # the last reply carries phase 2's first step
        for word in ("asks_realism", "realism", "confidence", "synthetic", "real"):
            assert word not in text.lower(), (word, text)
    assert [q["field"] for q in step["phase"]["questions"]] == ["confidence"]


def test_an_answer_a_grading_phase_does_not_ask_gets_a_neutral_refusal(reader_api):
    step = reader_api.next().json()
    response = reader_api.post(
        "answers",
        {"stage": step["stage"], "position": 0, "kl_grade": 1, "confidence": 2},
    )
    assert response.status_code == 400
    message = response.content.decode().lower()
    assert "confidence" in message
    assert "real" not in message and "synthetic" not in message
    assert not Judgment.objects.exists()


def _answer_with(reader_api, interaction):
    step = reader_api.next().json()
    asked = {q["field"] for q in step["phase"]["questions"]}
    body = {
        "stage": step["stage"],
        "position": step["position"],
        "kl_grade": 1,
        "confidence": 2 if "confidence" in asked else None,
        "interaction": interaction,
    }
    response = reader_api.post("answers", body)
    assert response.status_code == 201, response.content
    return Judgment.objects.order_by("-pk").first()


def test_the_viewer_log_is_stored_with_the_answer(reader_api):
    log = {
        "first_input_ms": 840,
        "answer_ms": 5120,
        "events": [
            [0, "v", 0, 0, 224, 224],
            [840, "z", 4.1, 100.25, 80],
            [900, "v", 60.4, 40, 90.2, 76],
            [2000, "w", 200, 140],
            [2100, "p", 1],
            [2300, "i", 1],
            [2500, "m", -40, 12],
            [3000, "r"],
        ],
    }
    judgment = _answer_with(reader_api, log)
    assert judgment.interaction == log | {
        "events": [
            e if e[1] != "z" else [840, "z", 4.1, 100.2, 80] for e in log["events"]
        ]
    }


@pytest.mark.parametrize(
    "interaction",
    [
        "not a log",
        {"events": "nope"},
        {"events": [[1, "x", 2], ["soon", "v", 1, 2, 3, 4], [5, "v", 1, 2], [6]]},
        {"events": [[1, "w", float("1e308") * 10, 2]], "answer_ms": -5},
    ],
)
def test_a_malformed_log_never_costs_the_answer(reader_api, interaction):
    judgment = _answer_with(reader_api, json.loads(json.dumps(interaction)))
    assert judgment.kl_grade == 1
    assert judgment.interaction is None


def test_a_long_log_is_cut_and_mixed_events_keep_the_good_ones(reader_api):
    events = [[i, "m", 1, 1] for i in range(5000)] + [[1, "bogus"]]
    judgment = _answer_with(reader_api, {"events": [[1, "x"], *events]})
    assert len(judgment.interaction["events"]) == 1999  # of the first 2000


def test_a_body_over_the_upload_limit_is_refused_with_a_message(reader_api, settings):
    reader_api.next()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"stage": "practice", "position": 0, "kl_grade": 1, "pad": "x" * 2000}
    response = reader_api.post("answers", body)
    assert response.status_code == 400
    assert response.json() == {"error": "The request body is too large."}
    assert not Judgment.objects.exists()
