"""Conversation ids are bound to their caller before they reach a replica."""

from __future__ import annotations

from agent_gateway import auth
from agent_gateway.tools import chat

ALICE = auth.Caller("system:serviceaccount:team-a:alice")
BOB = auth.Caller("system:serviceaccount:team-a:bob")


def test_two_callers_choosing_one_id_get_two_conversations():
    assert chat.bound_conversation(ALICE, "team-chat") != chat.bound_conversation(BOB, "team-chat")


def test_no_id_a_caller_chooses_names_another_callers_conversation():
    alices = chat.bound_conversation(ALICE, "default")
    # Bob naming Alice's whole stored id still lands under his own key.
    assert chat.bound_conversation(BOB, alices) != alices
    assert chat.bound_conversation(BOB, alices).startswith(BOB.key + ":")


def test_the_bound_id_fits_the_replicas_limit():
    assert len(chat.bound_conversation(ALICE, "x" * 200)) <= 256
