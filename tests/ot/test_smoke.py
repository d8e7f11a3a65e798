from tandem.ot import Insert, Retain, apply, compose, transform


def test_insert_in_the_middle() -> None:
    assert apply("a😀b", (Retain(1), Insert("x"))) == "ax😀b"


def test_transform_tie_puts_first_argument_left() -> None:
    a_prime, b_prime = transform((Insert("a"),), (Insert("b"),))
    assert apply(apply("", (Insert("a"),)), b_prime) == "ab"
    assert apply(apply("", (Insert("b"),)), a_prime) == "ab"
    assert compose((Insert("a"),), (Retain(1), Insert("b"))) == (Insert("ab"),)
