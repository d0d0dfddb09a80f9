-- Settles the queue and nothing else; every API process runs it a few times a second, so a
-- lapsed turn is given to the next in line even when no request arrives. Returns {tally}.
return {tally()}
