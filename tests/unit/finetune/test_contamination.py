"""The contamination guard catches verbatim and near-verbatim eval questions, not templated siblings."""

from __future__ import annotations

from ragft.finetune.contamination import answers_in_corpus, find_overlap

EVAL = {
    "q1": "Where was Alice Smith born?",
    "q2": "Which company does Bob Jones work for?",
    "q3": "What did Carol White study at university?",
}


def test_exact_overlap_after_normalisation():
    res = find_overlap("qa_train", ["where was ALICE smith born ?", "unrelated text"], EVAL)
    assert res.exact == ["q1"] and res.contaminated


def test_near_duplicate_is_caught():
    near = "Which company does Bob Jones work for these days?"
    res = find_overlap("docs", [near], EVAL, threshold=0.5)
    assert [q for q, _ in res.near] == ["q2"]
    assert 0.5 <= res.near[0][1] < 1.0


def test_templated_questions_about_other_people_are_not_contamination():
    train = ["Where was Dan Brown born?", "Which company does Erin Gray work for?", "What did Finn Black study at university?"]
    res = find_overlap("qa_train", train, EVAL)
    assert not res.contaminated, res.as_dict()


def test_answers_in_corpus_is_reported_share():
    assert answers_in_corpus({"q1": "Paris", "q2": "Acme Corp"}, ["Alice was born in Paris."]) == 0.5
