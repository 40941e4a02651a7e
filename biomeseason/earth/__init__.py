"""The real Earth: land tiles cut from the twelve Blue Marble maps, the label map's rule,
and the geographic prior that weighs an answer by where a photo was taken."""
