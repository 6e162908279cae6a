module labd

go 1.24
