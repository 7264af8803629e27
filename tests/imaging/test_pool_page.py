"""The staff pool page: filters as GET parameters, counts, montage, tagging."""

import re

import pytest

from turingtest.generation.models import Generator
from turingtest.imaging.models import Image
from turingtest.imaging.services import images_tag, import_batch_get_or_create
from turingtest.studies import services

IMG = re.compile(r'src="/api/v1/images/([^"]+)"')


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</table>", start)]


def counts(html: str) -> dict[int, tuple[int, int]]:
    table = section(html, "pool-counts")
    rows = re.findall(
        r'data-grade="(\d)"><td>KL \d</td><td class="real">(\d+)</td>'
        r'<td class="synthetic">(\d+)</td>',
        table,
    )
    return {int(g): (int(r), int(s)) for g, r, s in rows}


@pytest.fixture
def stocked(make_image):
    """Real images in batches 'site-a' (2 per grade) and 'site-b' (1 per
    grade, tagged 'curated'), synthetic ones of 'gan' (1 per grade)."""
    a = import_batch_get_or_create(name="site-a")
    b = import_batch_get_or_create(name="site-b")
    gan = Generator.objects.create(name="gan", checkpoint="g.pt", sha256="0" * 64)
    images = {"site-a": [], "site-b": [], "gan": []}
    for grade in range(5):
        images["site-a"] += [make_image("real", grade, batch=a) for _ in range(2)]
        images["site-b"].append(make_image("real", grade, batch=b))
        images["gan"].append(make_image("synthetic", grade, generator=gan))
    images_tag(
        images=Image.objects.filter(batch=b), names=["curated"]
    )  # through the service the page's form uses
    return images


def test_pool_page_filters_counts_and_montage(staff_client, stocked):
    whole = staff_client.get("/staff/images/").content.decode()
    assert counts(whole) == {g: (3, 1) for g in range(5)}
    assert "20 images: the whole pool" in whole
    assert 'id="nav-pool"' in whole  # linked from every staff page's header

    url = "/staff/images/?source=real&batch=site-a&grade=1&grade=3"
    html = staff_client.get(url).content.decode()
    assert counts(html) == {0: (0, 0), 1: (2, 0), 2: (0, 0), 3: (2, 0), 4: (0, 0)}
    assert "4 images: real, KL 1, 3, import batch site-a" in html
    wanted = {i.token for i in stocked["site-a"] if i.kl_grade in (1, 3)}
    assert set(IMG.findall(section(html, "pool-montage"))) == wanted
    assert set(IMG.findall(section(html, "pool-list"))) == wanted
    # The form shows the filter it applied, so the page reads as bookmarked.
    assert '<option value="real" selected>real</option>' in html
    assert "<option selected>site-a</option>" in html

    gan = staff_client.get("/staff/images/?generator=gan").content.decode()
    assert counts(gan) == {g: (0, 1) for g in range(5)}
    assert set(IMG.findall(section(gan, "pool-montage"))) == {
        i.token for i in stocked["gan"]
    }

    tagged = staff_client.get("/staff/images/?tag=curated").content.decode()
    assert set(IMG.findall(section(tagged, "pool-list"))) == {
        i.token for i in stocked["site-b"]
    }


def test_pool_page_filters_by_the_studies_that_use_images(staff_client, stocked):
    study = services.study_create(slug="knee", name="Knee", practice_count=0)
    services.cases_build(study=study, per_grade=1, seed=1)
    used = set(study.cases.values_list("image__token", flat=True))

    in_knee = staff_client.get("/staff/images/?used=knee").content.decode()
    assert set(IMG.findall(section(in_knee, "pool-list"))) == used
    assert "knee" in section(in_knee, "pool-list")

    unused = staff_client.get("/staff/images/?used=none").content.decode()
    tokens = set(IMG.findall(section(unused, "pool-list")))
    assert len(tokens) == 20 - 10 and not tokens & used
    assert "10 images: used by no study" in unused


def test_pool_page_tags_a_filter(staff_client, stocked):
    response = staff_client.post(
        "/staff/images/tag",
        {"source": "real", "grade": "4", "tag_name": "kl4-real", "action": "add"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/staff/images/?source=real&grade=4"
    page = staff_client.get("/staff/images/?tag=kl4-real").content.decode()
    assert counts(page)[4] == (3, 0) and "3 images" in page

    # A bad name is refused with a message, and nothing is tagged.
    bad = staff_client.post(
        "/staff/images/tag", {"tag_name": "no good", "action": "add"}, follow=True
    )
    assert "use letters, digits, hyphens and underscores only" in bad.content.decode()
    # Shown once: the next page no longer carries it.
    again = staff_client.get("/staff/images/").content.decode()
    assert "use letters, digits" not in again
    assert not Image.objects.filter(tags__name="no good").exists()

    staff_client.post(
        "/staff/images/tag",
        {"tag": "kl4-real", "tag_name": "kl4-real", "action": "remove"},
    )
    assert not Image.objects.filter(tags__name="kl4-real").exists()


def test_pool_page_refuses_bad_filters_and_non_staff(
    staff_client, reader_client, client, stocked
):
    bad = staff_client.get("/staff/images/?grade=seven")
    assert bad.status_code == 400
    assert "A KL grade is a whole number from 0 to 4." in bad.content.decode()
    for visitor in (reader_client, client):
        response = visitor.get("/staff/images/?source=real")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        tagged = visitor.post("/staff/images/tag", {"tag_name": "x", "action": "add"})
        assert tagged.status_code == 302
    assert not Image.objects.filter(tags__name="x").exists()


def test_pool_page_counts_reference_values_on_other_scales(staff_client, make_image):
    """A pool with mammograms (BI-RADS, no KL grade) beside knees: the KL
    table counts the images without a KL grade in a row of their own, and
    each other scale gets its table in the scale's order."""
    for birads, source in [(4, "real"), (4, "synthetic"), (0, "real"), (6, "real")]:
        make_image(source, 1, kl_grade=None, references={"birads": birads})
    make_image("real", 2, references={"birads": 2})  # a knee with both
    make_image("synthetic", 3)
    html = staff_client.get("/staff/images/").content.decode()
    assert counts(html)[2] == (1, 0) and counts(html)[3] == (0, 1)
    kl = section(html, "pool-counts")
    assert re.search(
        r'data-grade="none"><td>No KL grade</td><td class="real">3</td>'
        r'<td class="synthetic">1</td><td>4</td>',
        kl,
    )
    start = html.index('data-scale="birads"')
    birads = html[start : html.index("</table>", start)]
    assert "<th>BI-RADS category</th>" in birads
    rows = re.findall(
        r'data-value="(\d)"><td><a href="\?ref=birads:\d">\d</a></td>'
        r'<td class="real">(\d+)</td>'
        r'<td class="synthetic">(\d+)</td>',
        birads,
    )
    assert rows == [("0", "1", "0"), ("2", "1", "0"), ("4", "1", "1"), ("6", "1", "0")]


def test_pool_page_filters_by_a_reference_on_another_scale(staff_client, make_image):
    wanted = [
        make_image("real", 1, kl_grade=None, references={"birads": 4}),
        make_image("synthetic", 1, kl_grade=None, references={"birads": 4}),
    ]
    make_image("real", 1, kl_grade=None, references={"birads": 2, "realism-5": 3})
    make_image("real", 2)
    html = staff_client.get("/staff/images/?ref=birads:4").content.decode()
    dashed = staff_client.get("/staff/images/?ref=realism-5:3").content.decode()
    assert "1 image: realism-5 3" in dashed
    huge = staff_client.get("/staff/images/?ref=birads:99999999999999999999")
    assert huge.status_code == 200 and "0 images" in huge.content.decode()
    assert "2 images: BI-RADS 4" in html
    assert set(IMG.findall(section(html, "pool-montage"))) == {i.token for i in wanted}
    assert 'data-grade="none"><th>No KL grade</th>' in section(html, "pool-montage")
    assert set(IMG.findall(section(html, "pool-list"))) == {i.token for i in wanted}
    assert 'href="?ref=birads:4"' in staff_client.get("/staff/images/").content.decode()
    bad = staff_client.get("/staff/images/?ref=birads")
    assert bad.status_code == 400
    assert "a reference is SCALE:VALUE" in bad.content.decode()


@pytest.mark.parametrize(
    "query, message",
    [
        ("ref=kl:2", "has its own filter (grade=)"),
        ("ref=" + ",".join(f"birads:{i}" for i in range(51)), "At most 50"),
        ("ref=4:1", "a reference is SCALE:VALUE"),
    ],
)
def test_pool_page_refuses_references_it_cannot_filter_by(
    staff_client, db, query, message
):
    response = staff_client.get("/staff/images/?" + query)
    assert response.status_code == 400 and message in response.content.decode()


def test_a_scale_named_like_a_lookup_is_still_a_key(staff_client, make_image):
    """A scale called "contains" or "gt" names a key of the references, never
    one of the database's lookups on the whole field."""
    held = make_image("real", 1, kl_grade=None, references={"contains": 1, "gt": 5})
    make_image("real", 2, kl_grade=None, references={"birads": 1})
    for query in ("ref=contains:1", "ref=gt:5", "ref=GT:5"):
        html = staff_client.get("/staff/images/?" + query).content.decode()
        assert set(IMG.findall(section(html, "pool-list"))) == {held.token}, query
    assert "0 images" in staff_client.get("/staff/images/?ref=gt:1").content.decode()
