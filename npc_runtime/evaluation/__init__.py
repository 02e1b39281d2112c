"""Evaluation: does each NPC stay in character, and does the cast grow without forgetting?"""
