module github.com/galews/gale/bench

go 1.26

replace github.com/galews/gale => ../
