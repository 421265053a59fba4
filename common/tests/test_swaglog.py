

def test_a_repeating_problem_is_logged_on_its_1st_2nd_4th_8th_occurrence():
    from common.swaglog import log_due
    assert [n for n in range(1, 40) if log_due(n)] == [1, 2, 4, 8, 16, 32]
    # counted in batches: logged when a batch carries the count past a power of two
    assert log_due(3, 2) and log_due(10, 4) and not log_due(7, 2) and not log_due(0, 0)
