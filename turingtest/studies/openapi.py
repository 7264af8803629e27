"""OpenAPI 3.1 description of the reader API, served to staff at ``/api/v1/schema``.

It names every question of every phase, so readers never get it: a reader in
a grading phase must not learn what a later phase asks.
"""

from turingtest.domain.questions import FREE_TEXT_MAX
from turingtest.domain.scales import DETECTION, KL

_error = {
    "description": "A clear message, nothing stored",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_slug = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_answer_body = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}
    },
}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "turingtest reader API",
        "version": "1",
        "description": "What the reading page uses. Session authentication; "
        "POST requests need the CSRF token in the X-CSRFToken header.",
    },
    "paths": {
        "/api/v1/studies/{slug}/next": {
            "get": {
                "summary": "The case to show now (and the next image to preload)",
                "parameters": [_slug],
                "responses": {
                    "200": {
                        "description": "Current step",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Step"}
                            }
                        },
                    },
                    "401": _error,
                    "403": _error,
                    "404": _error,
                },
            }
        },
        "/api/v1/studies/{slug}/answers": {
            "post": {
                "summary": "Answer the current case; repeating it stores nothing new",
                "parameters": [_slug],
                "requestBody": _answer_body,
                "responses": {
                    "201": {"description": "Stored"},
                    "200": {"description": "Already stored (a repeated submit)"},
                    "400": _error,
                    "401": _error,
                    "403": _error,
                    "503": _error,
                },
            }
        },
        "/api/v1/studies/{slug}/answers/{stage}/{position}": {
            "get": {
                "summary": "Your current answer at a position (studies that allow edits)",
                "parameters": [
                    _slug,
                    {
                        "name": "stage",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                    {
                        "name": "position",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": {"description": "The answer"},
                    "400": _error,
                    "403": _error,
                    "404": _error,
                },
            }
        },
        "/api/v1/studies/{slug}/revisions": {
            "post": {
                "summary": "Change an answer (studies that allow edits, until the phase ends)",
                "parameters": [_slug],
                "requestBody": _answer_body,
                "responses": {
                    "201": {"description": "Revision stored"},
                    "400": _error,
                    "403": _error,
                },
            }
        },
        "/api/v1/studies/{slug}/finish": {
            "post": {
                "summary": "End a phase whose answers could still be changed",
                "parameters": [_slug],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "stage": {"$ref": "#/components/schemas/Stage"}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "Finished"},
                    "400": _error,
                    "403": _error,
                },
            }
        },
        "/api/v1/images/{token}": {
            "get": {
                "summary": "An image (PNG) of a study you are enrolled in",
                "parameters": [
                    {
                        "name": "token",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "PNG", "content": {"image/png": {}}},
                    "404": {"description": "Not found"},
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "fields": {"type": "object"},
                },
                "required": ["error"],
            },
            "Stage": {
                "oneOf": [{"const": "practice"}, {"type": "integer", "minimum": 1}]
            },
            "Answer": {
                "type": "object",
                "properties": {
                    "stage": {"$ref": "#/components/schemas/Stage"},
                    "position": {"type": "integer", "minimum": 0},
                    "confidence": {
                        "type": ["integer", "null"],
                        "minimum": DETECTION.min,
                        "maximum": DETECTION.max,
                        "description": ", ".join(
                            f"{code} {label.lower()}"
                            for code, label in DETECTION.choices()
                        ),
                    },
                    "kl_grade": {
                        "type": ["integer", "null"],
                        "minimum": KL.min,
                        "maximum": KL.max,
                    },
                    "answers": {
                        "type": ["object", "null"],
                        "description": "Answers to the phase's extra questions "
                        "(those with extra: true), by field: a value of the "
                        "question's choices, or text of up to "
                        f"{FREE_TEXT_MAX} characters for free text. Optional "
                        "questions may be left out.",
                    },
                    "interaction": {
                        "type": ["object", "null"],
                        "description": "The viewer's log of what the reader did with "
                        "the image: first_input_ms, answer_ms and events "
                        "[t_ms, kind, ...numbers] (see turingtest.studies."
                        "interactions). Optional; a malformed log is dropped, "
                        "never the answer.",
                        "properties": {
                            "first_input_ms": {"type": ["integer", "null"]},
                            "answer_ms": {"type": ["integer", "null"]},
                            "events": {"type": "array", "items": {"type": "array"}},
                        },
                    },
                },
                "required": ["stage", "position"],
            },
            "Step": {
                "type": "object",
                "properties": {
                    "stage": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Stage"},
                            {"type": "string"},
                        ]
                    },
                    "position": {"type": "integer"},
                    "total": {"type": "integer"},
                    "image": {"type": "string"},
                    "preload": {"type": "string"},
                    "redirect": {"type": "string"},
                    "review": {"type": "boolean"},
                    "can_revise": {"type": "boolean"},
                    "phase": {"$ref": "#/components/schemas/Phase"},
                },
            },
            "Phase": {
                "type": "object",
                "description": "The current phase, in words of its own: it lists "
                "only the questions it asks.",
                "properties": {
                    "number": {"type": "integer"},
                    "count": {"type": "integer"},
                    "practice": {"type": "boolean"},
                    "intro": {"type": "string"},
                    "questions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {
                                    "type": "string",
                                    "description": "The answer field it fills: "
                                    "confidence or kl_grade, or for an extra "
                                    "question its key in answers",
                                },
                                "title": {"type": "string"},
                                "type": {"enum": ["ordinal", "nominal", "free_text"]},
                                "required": {"type": "boolean"},
                                "extra": {
                                    "type": "boolean",
                                    "description": "Answered in the answers object",
                                },
                                "choices": {
                                    "type": "array",
                                    "description": "[value, label, description]; "
                                    "empty for free text",
                                },
                                "keys": {
                                    "type": "object",
                                    "description": "Keyboard key -> value",
                                },
                                "max_length": {"type": "integer"},
                                "hint": {"type": "string"},
                            },
                        },
                    },
                },
            },
        }
    },
}
