(Student program for mill-1, first attempt: labbridge check shows what would go wrong)
G21 G90 G54
G0 Z5
M3 S15000
G1 Z-2
G1 X230 Y8 F2500
G3 X230 Y32 I0 J12 (the arc bulges past the end of X travel)
G64 P0.05
G0 X30 Y50
G1 Z-3 F200
G1 X40 Y50
M5
